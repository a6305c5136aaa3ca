"""Pure parsers for Windows tools (netsh, reg, manage-bde, ipconfig, PowerShell list output).

Every parser takes `str`: the probes decode the captured bytes first with
`agent.parsers.windows.text.decode_output`, because the right codec depends on the tool and the
machine (UTF-16 LE from WMIC and redirected PowerShell, the console code page such as cp936 on
Chinese Windows from cmd.exe tools). Labels that Windows translates are matched through
language tables, never by column position.
"""
