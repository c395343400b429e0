"""GVTNet Explorer: `python app.py` serves it at http://127.0.0.1:7860 (GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT override); a Hugging Face Space runs this same file."""
from app import build_app

if __name__ == "__main__":
    # show_error: visitors see the real reason a request failed, not Gradio's generic message
    build_app().launch(show_error=True)
