"""How long ago, in Docker's words (go-units ``HumanDuration``), for container statuses ("Up 5 seconds").

Times themselves (RFC 3339, the zero time) are :mod:`dockyard.formats.timestamps`.
"""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """Docker's (go-units) HumanDuration: "Less than a second", "5 seconds", "About a minute"…"""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
