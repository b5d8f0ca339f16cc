"""Calling policy: when each recipient may be called, in their own time, and how often.

Pure functions, no Redis: the pipeline asks, for a contact at an instant (POSIX seconds),

    policy = policy_from_settings(settings)          # once, at start-up
    decision = policy.decide(number, template_id, now, time_zone=..., not_before=...,
                             expire_at=...)
    # Open(until)            call it now; re-check a batch still waiting at `until`
    # Closed(reason, until)  hold it until `until` (None: until an operator or a policy acts)
    # Expired(expire_at, blocked_by)  dead-letter it as `expired`

Modules: windows (weekly local ranges and their UTC intervals), calendars (Ramadan, public
holidays), presets (country windows as data), schedule (a custom window from its table),
zones (the recipient's time zones), decision (open until / closed until), caps (frequency
caps), policy (which rule applies), config (the TOML file), explain and cli (`levers-admin
policy check|explain`). See docs/calling-hours.md.
"""
