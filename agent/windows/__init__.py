"""The agent as a Windows service: the service control protocol (`scm_status`, logic tested on
Linux; `service_host`, the thin ctypes glue to advapi32 that only Windows runs) and the
commands the installer's custom action runs (`install_commands`)."""
