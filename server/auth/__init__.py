"""Who is calling the API.

For now a caller proves who they are with an API token (:mod:`server.auth.tokens`);
passwords, browser sessions and scopes will sit beside it, each resolving to the
same thing: the acting :class:`~server.models.Member`.
"""
