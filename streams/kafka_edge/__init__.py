"""Where streamrec touches Kafka's client libraries: Faust's and aiokafka's private APIs
(compat.py), whole record batches (publish.py), high watermarks, security settings in each
client's terms, and the topics with their admin."""
