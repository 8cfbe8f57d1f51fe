from anthropic_router.cli import main

raise SystemExit(main())
