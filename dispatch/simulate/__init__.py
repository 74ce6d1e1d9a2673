"""``dispatch simulate``: replay calls against a volunteer population through the real engine.

Pure planning code: no server, no database. :func:`dispatch.simulate.study.run_study` is
the library entry point; :mod:`dispatch.simulate.engine` replays one incident through the
same domain functions the service decides with.
"""
