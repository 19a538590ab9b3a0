// grade: colour grade. Exposure, contrast, saturation, hue turn, gamma, vignette.
uniform sampler2D u_input;
uniform float u_exposure;    // 0 [-4, 4] stops
uniform float u_contrast;    // 1 [0, 3] around mid grey
uniform float u_saturation;  // 1 [0, 3] 0 grey
uniform float u_hue;         // 0 [0, 1] hue turn, fraction of the colour wheel
uniform float u_gamma;       // 1 [0.2, 5] >1 brightens the mid tones
uniform float u_vignette;    // 0.3 [0, 2] darken the corners
uniform float u_brightness;  // 1 [0, 2] final level (0 fades to black)

void main() {
    vec3 c = texture(u_input, v_uv).rgb * exp2(u_exposure);
    c = (c - 0.5) * u_contrast + 0.5;
    vec3 hsv = rgb2hsv(clamp(c, 0.0, 1.0));
    c = hsv2rgb(vec3(fract(hsv.x + u_hue), clamp(hsv.y * u_saturation, 0.0, 1.0), hsv.z));
    c = pow(c, vec3(1.0 / u_gamma));
    float d = length(v_uv - 0.5) * 1.4142;
    c *= 1.0 - u_vignette * smoothstep(0.4, 1.2, d);
    f_color = vec4(c * u_brightness, 1.0);
}
