"""The image decoder process's entry point: ``python -m zones._image_child FD``.

A module of its own, which nothing imports: run as ``__main__``, it would otherwise be loaded
a second time by ``zones`` itself (runpy warns about exactly that).
"""

import sys
from multiprocessing.connection import Connection

from zones._image_worker import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
