from elvmass.cli import main

raise SystemExit(main())
