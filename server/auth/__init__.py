"""Who is calling the server, and what they may do.

- :mod:`~server.auth.passwords`: argon2id password hashes;
- :mod:`~server.auth.sessions`: browser sessions behind the session cookie;
- :mod:`~server.auth.csrf`: the CSRF token every unsafe request of a session carries;
- :mod:`~server.auth.tokens` and :mod:`~server.auth.scopes`: scoped, expiring API tokens;
- :mod:`~server.auth.ratelimit`: the limit on failed sign-ins;
- :mod:`~server.auth.policy`: the roles, and the one policy each route declares.

Each way in resolves to the same thing: the acting :class:`~server.models.Member`, with the
roles their record gives them. docs/security.md, section 4, says why each is as it is.
"""
