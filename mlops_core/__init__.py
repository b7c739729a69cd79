"""Shared core: settings, data, validation, training, registry conventions and reports.

The service imports only settings, profile and registry from here, never the training modules.
"""

from mlops_core import library_defaults

library_defaults.apply()
