from framerelay_tray.app import main

raise SystemExit(main())
