import sys

from chain_sdk.cli.main import main

sys.exit(main())
