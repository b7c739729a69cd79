"""The Feast feature repository of the project: entities and feature views, applied by ``mlops features apply``."""
