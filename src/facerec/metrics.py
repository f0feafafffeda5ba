"""Every Prometheus series of the service, defined in one place.

Each app gets its own registry (several apps can live in one test process); ``/metrics`` renders
it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facerec_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "facerec_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "facerec_inference_stage_seconds",
            "Time per pipeline stage (decode, detect, quality, align/embed, liveness, search).",
            ["stage", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_events = Counter(
            "facerec_model_events_total",
            "Model lifecycle events: load, evict, idle_unload, unload, shutdown.",
            ["model", "event"],
            registry=self.registry,
        )
        self.model_load_seconds = Histogram(
            "facerec_model_load_seconds",
            "Time to load a model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_memory_bytes = Gauge(
            "facerec_model_memory_bytes",
            "Estimated memory held by each loaded model (0 when unloaded).",
            ["model"],
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "facerec_cache_errors_total",
            "Cache backend failures (the service answers from the database meanwhile).",
            ["backend"],
            registry=self.registry,
        )
        self.cache_requests = Counter(
            "facerec_cache_requests_total",
            "Cache look-ups by result (hit or miss).",
            ["result"],
            registry=self.registry,
        )
        self.overloaded = Counter(
            "facerec_overloaded_total",
            "Requests refused with 429 because the inference queue was full.",
            registry=self.registry,
        )
        self.faces_filtered = Counter(
            "facerec_faces_filtered_total",
            "Detected faces left out of responses for low quality.",
            registry=self.registry,
        )
        self.events_published = Counter(
            "facerec_events_published_total",
            "Events accepted by the event bus, by type.",
            ["type"],
            registry=self.registry,
        )
        self.events_delivered = Counter(
            "facerec_events_delivered_total",
            "Events delivered by sink (mqtt: acknowledged by the broker; webhook: a 2xx answer).",
            ["sink"],
            registry=self.registry,
        )
        self.events_failed = Counter(
            "facerec_events_failed_total",
            "Events a sink could not deliver (broker down, webhook retries exhausted).",
            ["sink"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "facerec_events_dropped_total",
            "Events never handed to a sink: its queue was full, or (sink 'bus') unsafe data.",
            ["sink", "reason"],
            registry=self.registry,
        )
        self.webhook_dead_letters = Counter(
            "facerec_webhook_dead_letters_total",
            "Webhook deliveries given up after the last attempt or a non-retryable answer.",
            ["sink"],
            registry=self.registry,
        )

    # ModelEvents protocol (facerec.inference.manager)
    def model_event(self, model: str, event: str, seconds: float = 0.0) -> None:
        self.model_events.labels(model=model, event=event).inc()
        if event == "load":
            self.model_load_seconds.labels(model=model).observe(seconds)

    def model_memory(self, model: str, bytes_used: int) -> None:
        self.model_memory_bytes.labels(model=model).set(bytes_used)

    def stage(self, stage: str, model: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage, model=model).observe(seconds)

    # EventCounters protocol (facerec.events.bus) and webhook dead letters
    def event_published(self, event_type: str) -> None:
        self.events_published.labels(type=event_type).inc()

    def event_delivered(self, sink: str) -> None:
        self.events_delivered.labels(sink=sink).inc()

    def event_failed(self, sink: str) -> None:
        self.events_failed.labels(sink=sink).inc()

    def event_dropped(self, sink: str, reason: str) -> None:
        self.events_dropped.labels(sink=sink, reason=reason).inc()

    def webhook_dead_letter(self, sink: str) -> None:
        self.webhook_dead_letters.labels(sink=sink).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
