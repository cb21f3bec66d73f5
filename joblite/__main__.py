from joblite.cli import main

raise SystemExit(main())
