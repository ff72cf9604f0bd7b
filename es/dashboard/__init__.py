"""`es dashboard`: web pages for operators, server-sent events and Prometheus metrics, from a
process of its own that is an ordinary client of the event server and the name server.

Pure parts (tested offline): rates (counters to rates and charts), guard (which requests may
change anything), rows (events as the live tail shows them), metrics (STATS as Prometheus
families). The rest is a thin shell: source (asks es and ns), app (Starlette routes), run
(uvicorn on a socket of its own, the ready line).
"""
