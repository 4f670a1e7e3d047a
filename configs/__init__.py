"""YAML run profiles and the pydantic model that validates them."""

from configs.schema import RunConfig, load_config

__all__ = ["RunConfig", "load_config"]
