#!/usr/bin/env node
// compose-app frontend build: src/ into dist/, with node's standard library only (no package registry is
// reachable from a build). Minifies CSS and JS conservatively (comments, indentation, blank lines), names
// every asset by its content hash (app.3f2a9c1e.js) so a browser never mixes two releases, rewrites
// index.html to point at them and stamps the build time into it.
//
//   node build.js SRC DIST
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const [src, dist] = process.argv.slice(2);
if (!src || !dist) {
  console.error('usage: node build.js SRC DIST');
  process.exit(2);
}

// Line-based, so it never has to understand strings or regular expressions: indentation and blank lines go,
// and a // comment only when it is the whole line.
function minifyJS(text) {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('//'))
    .join('\n') + '\n';
}

function minifyCSS(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\s+/g, ' ')
    .replace(/\s*([{}:;,>])\s*/g, '$1')
    .replace(/;}/g, '}')
    .trim() + '\n';
}

function minifyHTML(text) {
  return text
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/>\s+</g, '><')
    .trim() + '\n';
}

function hashed(name, body) {
  const h = crypto.createHash('sha256').update(body).digest('hex').slice(0, 8);
  const ext = path.extname(name);
  return path.basename(name, ext) + '.' + h + ext;
}

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });

const minifiers = { '.js': minifyJS, '.css': minifyCSS };
let html = fs.readFileSync(path.join(src, 'index.html'), 'utf8');
let before = html.length;
let after = 0;
for (const name of fs.readdirSync(src).sort()) {
  const minify = minifiers[path.extname(name)];
  if (!minify) {
    continue;
  }
  const text = fs.readFileSync(path.join(src, name), 'utf8');
  const out = minify(text);
  const target = hashed(name, out);
  fs.writeFileSync(path.join(dist, target), out);
  html = html.split('"' + name + '"').join('"' + target + '"');
  before += text.length;
  after += out.length;
  console.log('build: ' + name + ' -> ' + target + ' (' + text.length + ' -> ' + out.length + ' bytes)');
}
html = minifyHTML(html.replace('__BUILD_TIME__', new Date().toISOString()));
fs.writeFileSync(path.join(dist, 'index.html'), html);
after += html.length;
console.log('build: ' + before + ' bytes of source into ' + after + ' bytes in ' + dist + '/');
