"""Typed errors for everything a user can trigger.

One base, `ClapperError`, and one branch per concern. Every message is a single line
that names the thing at fault and says what to do about it. The CLI maps these classes
to exit codes in one table (`clapper_cli.errors`); the library never exits.
"""

from __future__ import annotations


class ClapperError(Exception):
    """Base of every error clapper raises on purpose."""


# --- configuration -------------------------------------------------------------------


class ConfigError(ClapperError, ValueError):
    """A setting, option or config-file value is invalid."""


# --- video input ---------------------------------------------------------------------


class VideoError(ClapperError):
    """A video (or image) could not be read."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist, or is a directory where a file is expected."""


class NotAVideoError(VideoError):
    """The file is not a video or image that FFmpeg can open."""


class NoVideoStreamError(VideoError):
    """The file opens but holds no video stream (audio only, say)."""


class UnsupportedCodecError(VideoError):
    """The video stream uses a codec this FFmpeg build cannot decode."""


class EmptyVideoError(VideoError):
    """The video stream has no decodable frame."""


class CorruptVideoError(VideoError):
    """The file is damaged so badly that too few frames decode."""


# --- model loading and running -------------------------------------------------------


class ModelError(ClapperError):
    """A model could not be loaded or run."""


class ModelNotFoundError(ModelError):
    """No model at that path, and it is not a reachable Hugging Face id."""


class ModelFormatError(ModelError):
    """The model directory is incomplete, of the wrong type, or its weights do not fit."""


class QuantizationError(ModelError):
    """The requested precision cannot be used here (4-bit without bitsandbytes, say)."""


class DeviceError(ModelError):
    """The requested device is not available (CUDA asked for, none present)."""


class VisualTokenMismatchError(ModelError):
    """The prompt's video placeholders and the visual features differ in number."""


# --- data, training and evaluation ---------------------------------------------------


class DataError(ClapperError):
    """A training or benchmark file cannot be used."""


# --- talking to a server -------------------------------------------------------------


class ServerError(ClapperError):
    """A clapper server could not be reached, or refused the request."""
