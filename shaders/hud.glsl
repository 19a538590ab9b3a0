// hud: draw the heads-up display (a text image with alpha) over the picture.
// Used by the window, not as an effect.
uniform sampler2D u_input;

void main() {
    f_color = texture(u_input, v_uv);
}
