"""The HTTP library the installed SDKs are built on: ``httpx2``, or ``httpx`` for older SDKs.

Both have the same transport interface; the journaled transport must subclass the one the SDK
clients use.
"""

from __future__ import annotations

try:
    import httpx2 as httpx
except ImportError:  # openai and anthropic releases from before their move to httpx2
    import httpx  # type: ignore[no-redef,import-not-found,unused-ignore]

__all__ = ["httpx"]
