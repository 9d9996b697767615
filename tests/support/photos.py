"""Photos that pip packages bundle (scikit-image's data folder), as uint8 RGB arrays."""
import pathlib

import numpy as np


def skimage_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as uint8 RGB (needs `make dev-extras`)."""
    import skimage.data
    from PIL import Image

    folder = pathlib.Path(skimage.data.__file__).parent
    path = next(p for p in folder.iterdir() if p.stem == name and p.suffix in (".png", ".jpg"))
    return np.asarray(Image.open(path).convert("RGB"))
