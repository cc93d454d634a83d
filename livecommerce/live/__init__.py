"""Live shopping: shopstreams, invitations, the rooms (rooms/) and their transport (transport/)."""
