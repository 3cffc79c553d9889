import sys

from .runtime import main

main(sys.argv[1:])
