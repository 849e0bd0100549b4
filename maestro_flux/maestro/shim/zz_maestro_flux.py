"""maestro-flux registration shim.

Maestro finds adapters only by scanning the modules of this package
(maestrowf.interfaces.script). pip installs this one file here as part of the
maestro-flux distribution (and removes it on uninstall). Importing it registers
maestro-flux's adapter under ``type: flux`` and moves Maestro's built-in flux
adapter to ``type: flux-builtin``. The "zz_" name keeps it last in the scan.
"""

from maestro_flux.maestro.registration import register

FluxAdapter = register()
del register
