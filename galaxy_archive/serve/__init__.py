"""`serve`: the archive as a GOG for the LAN (issue 14).

routes (pure: which role or object a URL names), answers (pure: the JSON documents a Galaxy
client expects), server (aiohttp: reads the DB read-only and objects through the store).
"""
