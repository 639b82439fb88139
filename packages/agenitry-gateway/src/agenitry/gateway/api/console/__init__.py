"""The owner's console: server-rendered pages under /console, signed in with an admin key.

Every state change is a form post that works without JavaScript; the one script only
enhances (live news of pending requests, countdowns). See docs/console.md.
"""
