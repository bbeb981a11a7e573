"""Processes and signals: ``subprocess`` (subprocess transports and child reaping
through pidfd, SIGCHLD or a thread) and ``signals`` (``add_signal_handler`` and the
signal wakeup fd).  Builds on ``pyloop._core``; never imports the toolbox."""
