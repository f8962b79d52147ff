"""A griffe extension for the API reference: nanonet's ``Example:`` sections are Google's ``Examples:``.

nanonet's docstrings head their doctests ``Example:`` (singular). griffe's
Google parser knows only ``Examples:``, and would render the doctests as
Markdown text (where ``[2, 2, 1]`` reads as a link). Renaming the heading
when griffe loads each object makes them Python code blocks, without
touching the docstrings themselves.
"""

import re

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
