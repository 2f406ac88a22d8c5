"""Text preparation and the category/severity model."""

__all__: list[str] = []
