from bigmodel_tf.cli import main

raise SystemExit(main())
