"""The local tools a person runs beside the workers, never inside one: the embedded broker, a
local cluster of workers, the demo, the event producer and the recommendation consumer, and the
replay check that ties the evaluator to the worker."""
