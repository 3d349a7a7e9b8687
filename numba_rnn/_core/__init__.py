"""The package's lowest layer above the backend: dtypes (``dtype_of``), argument checks
(``check_int``, ``check_real``, ...: each names the argument, what was expected and what
was given) and devices. It imports only the backend and NumPy; everything else imports it."""
