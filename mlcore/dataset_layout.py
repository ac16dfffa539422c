"""The Flickr8k file layout: the contract between the app's feedback export (which writes it) and
the training pipeline (which reads it, merged with the real Flickr8k). Both import these names.

    Flickr8k_text/Flickr8k.token.txt           IMAGE.jpg#N<TAB>caption
    Flickr8k_text/Flickr_8k.{train,dev,test}Images.txt
    Flicker8k_Dataset/IMAGE.jpg                (sic: the original archive's spelling)
    tags.tsv                                   (export only) the people's tag decisions per image
"""

from __future__ import annotations

TOKEN_FILE = "Flickr8k_text/Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr8k_text/Flickr_8k.trainImages.txt",
    "dev": "Flickr8k_text/Flickr_8k.devImages.txt",
    "test": "Flickr8k_text/Flickr_8k.testImages.txt",
}
#: Where images live: the original spelling first (what the export writes), then the corrected one.
IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset")
IMAGE_DIR = IMAGE_DIRS[0]
TAGS_FILE = "tags.tsv"
TAGS_HEADER = "image\taccepted\trejected\tadded\tedited"
