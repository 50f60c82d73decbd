"""The executor protocol as both sides speak it (docs/protocol.md): header names, route paths and outcomes
(`wire`), the job JSON's models (`jobs`) and the duration and size syntax (`durations`).

It lives under the agent because the agent must not import `fleet`; the server imports it from here.
"""
