"""Pure parsers for macOS tools (system_profiler, socketfilterfw, fdesetup, softwareupdate,
scutil). Each raises `agent.parsers.ParseError` on output it does not recognise."""
