"""The command line, ``yuqing <verb>``: a module per command group, each a thin shell over the packages."""
