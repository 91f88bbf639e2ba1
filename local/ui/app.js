// Placeholder: the viewer's script replaces this file.
"use strict";
