"""Model registry and shared model parts: ``register_model`` names a builder; ``create_model``
builds a registered one from a config.

The method modules under ``ier.methods`` register their models; the registry loads them on first
use (``ier.plugins.load_methods``). This package holds what every method shares:
``config`` (``ModelConfig``), ``backbones``, ``common`` (the model interface, the AV head, the
two-tower base), ``output`` (what ``localize`` returns, the decision cues), ``maps`` (feature-map
maths), ``names`` (names carried by a ``state_dict``) and ``parts``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ier import plugins
from ier.errors import ConfigError
from ier.models.config import FrontendConfig, IERConfig, ModelConfig, model_config

if TYPE_CHECKING:  # the registry itself needs no torch, so ``ier.config`` imports stay light
    from torch import nn

__all__ = [
    "FrontendConfig",
    "IERConfig",
    "ModelConfig",
    "create_model",
    "list_models",
    "model_config",
    "register_model",
]

Builder = TypeVar("Builder", bound=Callable[[ModelConfig], "nn.Module"])

_REGISTRY: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a class or function ``builder(config: ModelConfig) -> nn.Module``.

    Example::

        @register_model("ots")
        class OTSModel(TwoTowerModel): ...
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def _discover_methods() -> None:
    """Load the method modules, which register their models, on first use (``ier.plugins``:
    ``ier.methods`` sits above this package, so its modules are loaded as plugins)."""
    plugins.load_methods()


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    _discover_methods()
    return sorted(_REGISTRY)


def create_model(config: ModelConfig | dict[str, Any] | None = None, **overrides: Any) -> nn.Module:
    """Build the model named by ``config.name``.

    Args:
        config: A ``ModelConfig``, its ``to_dict()`` form, or None for defaults.
        **overrides: Top-level ``ModelConfig`` fields replacing those of ``config``.

    Raises:
        ConfigError: Unknown model name or invalid config values.
    """
    try:
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if overrides:
            config = ModelConfig.from_dict({**config.to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid model config: {exc}") from exc
    if config.name not in _REGISTRY:
        _discover_methods()
    if config.name not in _REGISTRY:
        raise ConfigError(f"unknown model {config.name!r}; registered: {', '.join(list_models())}")
    factory = _REGISTRY[config.name]
    check_object_prior(factory, config)
    return factory(config)


def check_object_prior(model_type: type, config: ModelConfig) -> None:
    """ConfigError when ``config.object_prior`` > 0 but ``model_type``'s maps would ignore it."""
    if config.object_prior and not getattr(model_type, "supports_object_prior", False):
        raise ConfigError(
            f"model {config.name!r} does not support the objectness prior "
            f"(object_prior={config.object_prior}); only IEr and OTS maps honour it"
        )

