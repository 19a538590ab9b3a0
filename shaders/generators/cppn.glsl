// cppn: the weightless default generator (runtime/generators/cppn.py) as a fragment
// shader, drawing the picture its torch path draws: the same seeded weights,
// Fourier features, FiLM, palette and controls, in float32.
//
// Not an effect pass: runtime/render/gl_generator.py compiles it after a prelude
// holding CppnGenerator.gl_program's defines (CPPN_OFF_*: table rows), its tables
// (`static_vec(i)`, `frame_vec(i)`: vec4 rows) and its generated
// `vec3 cppn_field(vec2 xy, float detail)`: the Fourier features and the layers.
// Each output texel is the image's pixel (column, H - 1 - row): GL's rows run
// bottom-up, as in the texture the compositor uploads a frame into.

uniform vec2 u_size;       // the frame, px
uniform vec4 u_grid_x;     // torch.linspace(-aspect, aspect, W): start, end, step, halfway
uniform vec4 u_grid_y;     // torch.linspace(1, -1, H): the same terms
uniform vec4 u_rotate;     // the rotation matrix's rows: (c, s), (-s, c)
uniform float u_zoom;      // the coordinates' divisor
uniform float u_warp;      // domain warp amount
uniform float u_drift;     // the warp's phase, radians
uniform float u_detail;    // spatial frequency of the features
uniform float u_hue_shift; // the latent's turn around the palette

// torch.linspace's value i as torch computes it: each half from its own end, so
// the last value is exactly `end`.
float linspace(vec4 terms, float steps, float i) {
    return i < terms.w ? terms.x + terms.z * i : terms.y - terms.z * (steps - 1.0 - i);
}

void main() {
    vec2 pixel = floor(gl_FragCoord.xy);
    vec2 grid = vec2(
        linspace(u_grid_x, u_size.x, pixel.x),
        linspace(u_grid_y, u_size.y, u_size.y - 1.0 - pixel.y)
    );
    // xy = (grid @ rot) / zoom, then the drifting domain warp.
    vec2 xy = vec2(
        grid.x * u_rotate.x + grid.y * u_rotate.z,
        grid.x * u_rotate.y + grid.y * u_rotate.w
    ) / u_zoom;
    if (u_warp > 0.0) {
        vec4 dirs = static_vec(CPPN_OFF_WARP);  // (w00, w01, w10, w11)
        vec2 along = vec2(xy.x * dirs.x + xy.y * dirs.z, xy.x * dirs.y + xy.y * dirs.w);
        xy = xy + u_warp * sin(along * 2.0 + u_drift).yx;
    }
    vec3 out3 = cppn_field(xy, u_detail);  // hue, light, chroma in -1..1

    // A cosine palette turned by the hue and the latent, then saturation and light.
    vec4 freq = static_vec(CPPN_OFF_PALETTE);        // palette frequency * 0.6
    vec4 phase0 = static_vec(CPPN_OFF_PALETTE + 1);  // palette phase
    vec3 phase = freq.xyz * out3.x + phase0.xyz + u_hue_shift;
    vec3 colour = 0.5 + 0.5 * cos(6.2831855 * phase);  // 2 pi in float32, as torch has it
    float grey = (colour.r + colour.g + colour.b) / 3.0;
    colour = grey + (colour - grey) * (1.0 + 0.35 * out3.z);
    colour = clamp(colour * (0.7 + 0.35 * out3.y), 0.0, 1.0);
    // Exactly the worker's 8 bits, (c * 255 + 0.5) truncated, whatever rounding the
    // target's conversion uses: a multiple of 1/255 converts to itself.
    f_color = vec4(floor(colour * 255.0 + 0.5) / 255.0, 1.0);
}
