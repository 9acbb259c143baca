"""``v6alt check``: a federation tester for Matrix and XMPP that works inside a mesh.

Network I/O lives here, never in the core: every decision (decoding, the dial
and trust policy, the never-dial list) is asked of :mod:`v6alt`.
"""
