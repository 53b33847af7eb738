"""Local servers that speak the cloud providers' wire protocols, so the real LiveKit plugins run
end to end in tests, with injectable latency and faults."""

from tests.fakes.deepgram_server import DeepgramFake
from tests.fakes.elevenlabs_server import ElevenLabsFake
from tests.fakes.openai_server import OpenAIFake

__all__ = ["DeepgramFake", "ElevenLabsFake", "OpenAIFake"]
