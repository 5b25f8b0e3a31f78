"""streamrec's processes: ``worker`` (the Faust app), ``steps`` (the pure steps a worker's batch
runs), ``kafka_edge`` (Kafka client internals, security, topics), ``trainer`` (the lifelong
trainer), ``tools`` (broker, cluster, demo, producer, consumer: never inside a worker), and
``cli`` (the only code that reads argv or env). ``settings.py`` is what they all share."""
