// Entry point: mounts the admin UI into #app. Nothing else happens here.

import { render } from 'preact';
import { App } from './app';
import './styles.css';

const root = document.getElementById('app');
if (root) render(<App />, root);
