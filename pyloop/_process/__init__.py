"""Processes and signals: ``subprocess`` (subprocess transports and child reaping
through pidfd, SIGCHLD or a thread), ``spawn`` (starting a child without blocking
the loop on its exec status), ``_syscalls`` (Cython: the exec-status read, made
from C) and ``signals`` (``add_signal_handler`` and the signal wakeup fd).  Builds
on ``pyloop._core``; never imports the toolbox."""
