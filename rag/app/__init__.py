"""The Gradio chat: the service behind it, the blocks and the HTML rendering."""
