"""The real-time endpoint: GET /v1/ws, and the domain modules whose frames it understands.

gateway/ws.py is the protocol runtime and knows no domain; the modules imported here
register their client frames with `@frame_handler` when imported, which happens through the
route table (handlers/__init__.py). docs/realtime.md lists every frame.
"""
from gateway.ws import WebSocketHandler

# Domain frame modules: imported for their @frame_handler registrations.
from handlers import chat_frames  # noqa: F401  (chat.send, chat.read, chat.typing, chat.recall)

__all__ = ["WebSocketHandler"]
