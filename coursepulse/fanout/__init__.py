"""Live fan-out of progress events.

The event log (`progress_events`) is the truth; a broker only wakes listeners
up, naming the course that has news. A per-course feed then reads the log
after the last id it delivered and hands the rows to that course's
subscriptions. A lost wake-up is therefore recovered by the next read, and
every event is delivered in id order, exactly once per subscription.
"""
