"""A multipart parser that refuses file names with path parts instead of silently stripping them.

Django strips folders from upload names; we refuse ``../x.png`` or ``a/b.png`` with a clear message so the
sender learns that the name was wrong (the name is only displayed and used for its extension, never a path).
"""

from __future__ import annotations

import html

from django.conf import settings
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser

from .imaging import ImageRejected, check_filename


class FileNameRejected(MultiPartParserError):
    pass


class _KeepNameParser(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name: str) -> str | None:
        name = "".join(ch for ch in html.unescape(file_name) if ch.isprintable())
        try:
            check_filename(name)
        except ImageRejected as exc:
            if any(sep in name for sep in ("/", "\\")) or name.strip() in {".", ".."}:
                raise FileNameRejected(str(exc)) from exc
        return name or None

    IE_sanitize = sanitize_file_name


class RawNameMultiPartParser(MultiPartParser):
    def parse(self, stream: object, media_type: str | None = None,
              parser_context: dict | None = None) -> DataAndFiles:
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            data, files = _KeepNameParser(meta, stream, request.upload_handlers, encoding).parse()
        except FileNameRejected as exc:
            raise ParseError({"file": [str(exc)]}) from exc
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return DataAndFiles(data, files)
