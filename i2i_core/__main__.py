from i2i_core.cli import main

main()
