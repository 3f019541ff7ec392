"""Optional OpenTelemetry traces (``pip install 'dossier[otel]'``, ``DOSSIER_OTEL_ENABLED=true``).

Off unless configured: without it every :func:`span` is a no-op that costs one check. When on, a span is
made for each HTTP request, each task a worker runs, and each webhook delivery attempt (with the delivery's
stable id, ``dossier.delivery.id``); they are exported over OTLP/HTTP as the standard ``OTEL_*`` environment
variables say (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

_tracer: Any = None


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass


_NO_SPAN = _NoSpan()


class _NoSpanContext:
    """The block of a span when tracing is off: no generator, no allocation (it wraps every attempt)."""

    def __enter__(self) -> _NoSpan:
        return _NO_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN_CONTEXT = _NoSpanContext()


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(*, provider: Any = None, service_name: str = "dossier") -> None:
    """Turn tracing on in this process: with ``provider`` (a TracerProvider, e.g. a test's), else an SDK
    provider exporting over OTLP/HTTP. Raises RuntimeError naming the extra when the packages are missing."""
    global _tracer
    if provider is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:  # pragma: no cover
            raise RuntimeError(
                "DOSSIER_OTEL_ENABLED=true needs the otel extra: pip install 'dossier[otel]'"
            ) from None
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _tracer = provider.get_tracer("dossier")


def disable_tracing() -> None:
    global _tracer
    _tracer = None


def span(name: str, kind: str = "internal", **attributes: Any) -> AbstractContextManager[Any]:
    """A span around the block when tracing is on (``kind``: internal, server or client); yields it (or a
    stand-in that ignores ``set_attribute``)."""
    if _tracer is None:
        return _NO_SPAN_CONTEXT
    return _span(name, kind, attributes)


@contextmanager
def _span(name: str, kind: str, attributes: dict[str, Any]) -> Iterator[Any]:
    from opentelemetry.trace import SpanKind

    span_kind = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}.get(kind, SpanKind.INTERNAL)
    clean = {k: v for k, v in attributes.items() if v is not None}
    with _tracer.start_as_current_span(name, kind=span_kind, attributes=clean) as current:
        yield current
