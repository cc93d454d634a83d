"""Live transports: the /live Socket.IO namespace, its REST twins, stream and invitation routes.

The Socket.IO server and the one seam module on python-socketio internals live here too, with
the per-socket event budget.
"""
